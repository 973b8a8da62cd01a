package generate

// ImageArgs is the River job that makes one item's image. It carries the
// item id only: everything else is read from the item row, so the job stays
// valid across deploys. The kind string must never change.
type ImageArgs struct {
	ItemID int64 `json:"item_id"`
	// Generation distinguishes a regeneration of the same item (a new
	// version) from a retry of the same request; 0 is the first.
	Generation int64 `json:"generation,omitempty"`
}

// Kind implements river.JobArgs.
func (ImageArgs) Kind() string { return "image" }

//go:build !unix

package input

import "time"

// cpuTime is unknown here; benchmarks then omit the per-CPU-second figure.
func cpuTime() time.Duration { return 0 }

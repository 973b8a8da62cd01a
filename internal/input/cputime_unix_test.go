//go:build unix

package input

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time this process has used. Benchmarks report rows per
// CPU second as well as per wall second because the shared machines they run
// on are often busy, which only the wall figure suffers from.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package s3test

import (
	"os/exec"
	"syscall"
)

// setPdeathsig has the kernel kill the server if the test process dies
// without running its cleanups (a timeout panic, kill -9).
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

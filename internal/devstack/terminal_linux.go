package devstack

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"
)

// TakeTerminal makes Ctrl-C reach this process alone when it was started in
// the foreground of a terminal by another program that waits for it (make,
// go run). The terminal sends Ctrl-C's SIGINT to its whole foreground process
// group: make would then report the recipe as interrupted and exit with
// status 130 however cleanly this process stopped, and go run would exit
// with status 1. So this process moves to a process group of its own and
// makes it the terminal's foreground; the returned function gives the
// terminal back to the original group before exit.
//
// It does nothing when stdin is not a terminal (tests, scripts, CI) or when
// this process already leads its group (started by an interactive shell).
// While it holds the terminal Ctrl-Z is ignored: stopping this process would
// leave the terminal to a stopped group while make still waits for it.
func TakeTerminal() (restore func()) {
	noop := func() {}
	const tty = 0
	fg, err := tcgetpgrp(tty)
	if err != nil {
		return noop
	}
	own := syscall.Getpgrp()
	if fg != own || own == os.Getpid() {
		return noop
	}
	// A process outside the foreground group that sets the foreground, or
	// writes to the terminal with tostop, would get SIGTTOU.
	signal.Ignore(syscall.SIGTTOU, syscall.SIGTSTP)
	if err := syscall.Setpgid(0, 0); err != nil {
		return noop
	}
	if err := tcsetpgrp(tty, os.Getpid()); err != nil {
		_ = syscall.Setpgid(0, own)
		return noop
	}
	return func() {
		if fg, err := tcgetpgrp(tty); err == nil && fg == os.Getpid() {
			_ = tcsetpgrp(tty, own)
		}
	}
}

func tcgetpgrp(fd int) (int, error) {
	var pgid int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgid))); errno != 0 { //nolint:gosec // the ioctl's documented argument
		return 0, errno
	}
	return int(pgid), nil
}

func tcsetpgrp(fd, pgid int) error {
	// A pid fits in 32 bits.
	p := int32(pgid) //nolint:gosec

	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCSPGRP, uintptr(unsafe.Pointer(&p))); errno != 0 { //nolint:gosec // the ioctl's documented argument
		return errno
	}
	return nil
}

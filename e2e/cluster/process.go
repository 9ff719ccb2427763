package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// process is one running component: its own process group, its output in
// a log file of the run directory.
type process struct {
	name    string
	cmd     *exec.Cmd
	pidv    int // kept: Release forgets the pid of a detached process
	logPath string
	exited  chan struct{} // closed when the process has exited (attached mode)
	err     error         // why it exited, valid once exited is closed
}

// spawnRequest asks the spawner goroutine to start a command.
type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

// spawner starts every attached child from one goroutine locked to one OS
// thread that never exits: Linux delivers the parent-death signal when the
// thread that forked a child exits, not the process, so children started
// from an ordinary goroutine could be killed early when the Go runtime
// retires that thread, or outlive the test when a thread-bound parent dies.
var spawner = func() chan<- spawnRequest {
	reqs := make(chan spawnRequest)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for r := range reqs {
			r.done <- r.cmd.Start()
		}
	}()
	return reqs
}()

// startProcess starts a component with its output in logDir/<name>.log.
// Each component gets its own process group, so that a terminal's Ctrl-C
// reaches only the test binary, which stops the components in order.
// Attached components also get SIGKILL when the starting process dies
// without stopping them (a panic, a SIGKILL, go test's timeout).
func startProcess(name, logDir string, detached bool, env []string, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor

	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = filepath.Dir(logDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if detached {
		// A session of its own: it outlives the command that started it and
		// the terminal that command ran in.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	if detached {
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		p.pidv = cmd.Process.Pid
		// Nobody waits in detached mode: release it so it is reparented to
		// init when this command exits, and never becomes a zombie of ours.
		_ = cmd.Process.Release()
		return p, nil
	}
	done := make(chan error, 1)
	spawner <- spawnRequest{cmd: cmd, done: done}
	if err := <-done; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.pidv = cmd.Process.Pid
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// pid is the process id, which is also its process group id.
func (p *process) pid() int { return p.pidv }

// checkRunning reports an error if an attached process has already exited.
func (p *process) checkRunning() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); its log: %s", p.name, p.err, p.logPath)
	default:
		return nil
	}
}

// stopGroup sends SIGTERM to a process group, then SIGKILL if it is still
// there after grace. alive tells whether the group is gone.
func stopGroup(pgid int, grace time.Duration, gone func() bool) {
	if err := syscall.Kill(-pgid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if gone() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	for i := 0; i < 100 && !gone(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends an attached process and waits for it.
func (p *process) stop(grace time.Duration) {
	stopGroup(p.pid(), grace, func() bool {
		select {
		case <-p.exited:
			return true
		default:
			return false
		}
	})
}

// Alive reports whether a process with this pid exists and is not a zombie.
func Alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' && i+2 < len(stat) {
			return stat[i+2] != 'Z' && stat[i+2] != 'X'
		}
	}
	return true
}

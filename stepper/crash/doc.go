// Package crash holds the stepper's crash points, for the fault suite
// (e2e/faults): it proves that a controller killed between any two writes
// never sends traffic to a version already judged bad.
//
// In ordinary builds Client returns the client it is given. Built with the
// tag faultinject, every write the client makes successfully is followed
// by a crash point, and the environment variable CANARY_CRASH_AT selects
// the one where the process kills itself with SIGKILL (no deferred
// function runs, no buffer is flushed, as when a node dies):
//
//	CANARY_CRASH_AT='after update Deployment reviews#2'  the second time that point is reached
//	CANARY_CRASH_AT='*#1'                                 the first write, whichever
//
// Every point reached is logged to standard error first, so a test can
// tell which write the process died after.
package crash

// Package scenario is the bookinfo story the end-to-end test and the demo
// both run: reviews canaried from v1 to v2 to v3, each promoted, then a bad
// v4 rolled back; it records each rollout's timeline and draws it.
package scenario

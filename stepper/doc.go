// Package stepper is the background half of the canary.io contract: for
// each opted-in Deployment whose template the webhook holds, it runs the
// new template as <deployment>-canary, moves the VirtualService's weights
// step by step, judges each step with Prometheus, and promotes the new
// version or rolls it back.
//
// Each pass is gather → decide → act: gather reads the Deployment, its
// canary objects, the user's Service and VirtualService and, when a step's
// checks are due, Prometheus into plan.Observations; plan.Next decides;
// act applies the actions in order and writes the next state to the
// Deployment's annotations in one update. All state lives in the cluster,
// so a restarted stepper resumes where it was.
package stepper

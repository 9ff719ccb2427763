package gitops

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// health runs the health check on an object given as JSON, as Argo CD
// does: the object in the global obj, the result in hs.
func health(t *testing.T, objJSON string) (status, message string) {
	t.Helper()
	script, err := os.ReadFile("argocd-health.lua")
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(objJSON), &obj); err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(string(script)); err != nil {
		t.Fatalf("the script fails: %v", err)
	}
	hs, ok := L.GetGlobal("hs").(*lua.LTable)
	if !ok {
		t.Fatalf("the script returns no hs table")
	}
	return hs.RawGetString("status").String(), hs.RawGetString("message").String()
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	}
	return lua.LNil
}

func TestArgoCDHealth(t *testing.T) {
	const rolledOut = `"status":{"observedGeneration":2,"replicas":3,"updatedReplicas":3,"availableReplicas":3}`
	tests := []struct {
		name, obj, status, message string
	}{
		{"analysis in flight, paused: Progressing, not Suspended",
			`{"metadata":{"generation":2,"annotations":{"canary.io/enabled":"true","canary.io/phase":"Progressing","canary.io/message":"step 2/3 running at weight 40%"}},"spec":{"paused":true,"replicas":3},` + rolledOut + `}`,
			"Progressing", "step 2/3 running at weight 40%"},
		{"paused by canary.io/pause: Progressing",
			`{"metadata":{"generation":2,"annotations":{"canary.io/enabled":"true","canary.io/phase":"Paused"}},"spec":{"paused":true,"replicas":3},` + rolledOut + `}`,
			"Progressing", "canary.io Paused"},
		{"promoting: Progressing",
			`{"metadata":{"generation":3,"annotations":{"canary.io/enabled":"true","canary.io/phase":"Promoting"}},"spec":{"replicas":3},"status":{"observedGeneration":3,"replicas":4,"updatedReplicas":1,"availableReplicas":3}}`,
			"Progressing", "canary.io Promoting"},
		{"rolled back: Degraded with the reason",
			`{"metadata":{"generation":2,"annotations":{"canary.io/enabled":"true","canary.io/phase":"RolledBack","canary.io/message":"rolled back: success rate 80%"}},"spec":{"paused":true,"replicas":3},` + rolledOut + `}`,
			"Degraded", "success rate 80%"},
		{"succeeded and rolled out: Healthy",
			`{"metadata":{"generation":2,"annotations":{"canary.io/enabled":"true","canary.io/phase":"Succeeded","canary.io/message":"promoted"}},"spec":{"replicas":3},` + rolledOut + `}`,
			"Healthy", "promoted"},
		{"succeeded, rolling update still running: Progressing",
			`{"metadata":{"generation":2,"annotations":{"canary.io/enabled":"true","canary.io/phase":"Succeeded"}},"spec":{"replicas":3},"status":{"observedGeneration":2,"replicas":4,"updatedReplicas":2,"availableReplicas":3}}`,
			"Progressing", "new replicas have been updated"},
		{"not opted in and paused: Suspended, as Argo CD says",
			`{"metadata":{"generation":2},"spec":{"paused":true,"replicas":3},` + rolledOut + `}`,
			"Suspended", "paused"},
		{"not opted in, deadline exceeded: Degraded",
			`{"metadata":{"generation":2},"spec":{"replicas":3},"status":{"observedGeneration":2,"replicas":3,"updatedReplicas":1,"availableReplicas":2,"conditions":[{"type":"Progressing","reason":"ProgressDeadlineExceeded","message":"ReplicaSet has timed out progressing."}]}}`,
			"Degraded", "timed out"},
		{"generation not yet observed: Progressing",
			`{"metadata":{"generation":3},"spec":{"replicas":3},` + rolledOut + `}`,
			"Progressing", "generation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, message := health(t, tt.obj)
			if status != tt.status || !strings.Contains(message, tt.message) {
				t.Fatalf("health %s %q, want %s with %q", status, message, tt.status, tt.message)
			}
		})
	}
}

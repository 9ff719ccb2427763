package scenario

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"

	"github.com/canary-io/canary/e2e/cluster"
	"github.com/canary-io/canary/e2e/controller"
	"github.com/canary-io/canary/stepper/notify"
)

// ChatProvider is the notification provider the story's reviews names
// (canary.io/notify): warn only, as an on-call channel would be set.
const ChatProvider = "team-chat"

// Receiver stands in for the team's chat: a JSON webhook on loopback that
// records every notification the controller sends.
type Receiver struct {
	srv *httptest.Server
	// Flag is the controller's flag naming the providers file.
	Flag string
	// Out, if set, gets one line per notification (the demo's live view).
	Out io.Writer

	mu  sync.Mutex
	got []notify.Notification
}

// StartReceiver starts the receiver and writes, in dir, the providers file
// naming it as ChatProvider.
func StartReceiver(dir string) (*Receiver, error) {
	r := &Receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var n notify.Notification
		if err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, n)
		out := r.Out
		r.mu.Unlock()
		if out != nil {
			fmt.Fprintf(out, "%s notification to %s: %s/%s %s (%s): %s\n", n.Severity, ChatProvider, n.Namespace, n.Deployment, n.Phase, n.Reason, n.Message)
		}
	}))
	path := filepath.Join(dir, "notification-providers.yaml")
	file := fmt.Sprintf("providers:\n- {name: %s, type: webhook, url: %q, severity: warn}\n", ChatProvider, r.srv.URL)
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		r.srv.Close()
		return nil, err
	}
	r.Flag = "--notification-providers=" + path
	return r, nil
}

// Received returns the notifications received so far.
func (r *Receiver) Received() []notify.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Notification(nil), r.got...)
}

// Close stops the receiver.
func (r *Receiver) Close() { r.srv.Close() }

// StartController starts what a story needs on a running cluster besides
// the cluster itself: the team's chat (a Receiver) and the controller,
// built from this checkout, with the story's flags (the propagation delay
// 1 s, the scrape interval looked up every 2 s, the canary kept 5 s after
// its traffic left, notifications to the chat).
func StartController(c *cluster.Cluster) (*Receiver, *controller.Process, error) {
	chat, err := StartReceiver(c.Dir)
	if err != nil {
		return nil, nil, err
	}
	p, err := controller.Build(c)
	if err == nil {
		err = p.Start("--prometheus-url="+c.PrometheusURL, "--propagation-delay=1s", "--scrape-interval-refresh=2s", "--canary-removal-delay=5s", chat.Flag)
	}
	if err != nil {
		chat.Close()
		return nil, nil, err
	}
	return chat, p, nil
}

// Package activity counts SCIM writes per token and reports them as one
// summary event per interval on the ScimToken.
package activity

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// EventActivity is the reason of the periodic summary event on a ScimToken.
const EventActivity = "ScimActivity"

// Recorder counts SCIM writes per token and reports them as one Normal event
// on the ScimToken per interval ("kubectl describe scimtoken entra").
//
// An event per written object would be an API write per SCIM request (a
// third of a create's cost) and an entry per object in the events
// broadcaster's cache: at 100,000 users both matter more than the detail.
// Each write is still in the audit log, and objects carry the token label.
//
// The events are written directly rather than through client-go's events
// recorder: the recorder treats events with the same object, reason and
// action as one series and drops the later notes, which are the point here.
type Recorder struct {
	client   client.Client // reads ScimTokens (cache), creates events
	instance string        // reportingInstance: this replica
	interval time.Duration

	mu     sync.Mutex
	counts map[client.ObjectKey]map[string]int // token -> "users created" -> n
}

// NewRecorder reports every interval (default one minute) for the replica
// named instance (the pod name).
func NewRecorder(c client.Client, instance string, interval time.Duration) *Recorder {
	if interval <= 0 {
		interval = time.Minute
	}
	return &Recorder{client: c, instance: instance, interval: interval, counts: map[client.ObjectKey]map[string]int{}}
}

// Add counts n writes made with the token of namespace; what reads like
// "users created". Writes without a token and a nil Recorder count
// nothing.
func (a *Recorder) Add(namespace, token, what string, n int) {
	if a == nil || token == "" || n == 0 {
		return
	}
	key := client.ObjectKey{Namespace: namespace, Name: token}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts[key] == nil {
		a.counts[key] = map[string]int{}
	}
	a.counts[key][what] += n
}

// Counted returns what has been counted for the token of namespace and not
// reported yet.
func (a *Recorder) Counted(namespace, token string) map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.counts[client.ObjectKey{Namespace: namespace, Name: token}])
}

// Start reports until ctx ends, then once more (manager.Runnable).
func (a *Recorder) Start(ctx context.Context) error {
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.flush(context.Background())
			return nil
		case <-t.C:
			a.flush(ctx)
		}
	}
}

// Instance is the replica the events name ("" for a nil Recorder).
func (a *Recorder) Instance() string {
	if a == nil {
		return ""
	}
	return a.instance
}

// NeedLeaderElection is false: every replica reports its own writes.
func (a *Recorder) NeedLeaderElection() bool { return false }

func (a *Recorder) flush(ctx context.Context) {
	a.mu.Lock()
	counts := a.counts
	a.counts = map[client.ObjectKey]map[string]int{}
	a.mu.Unlock()
	for key, c := range counts {
		var tok scimv1.ScimToken
		if err := a.client.Get(ctx, key, &tok); err != nil {
			continue // token deleted meanwhile: nothing to attach the event to
		}
		now := time.Now()
		ev := &eventsv1.Event{
			ObjectMeta: metav1.ObjectMeta{Namespace: tok.Namespace, Name: fmt.Sprintf("%s.%x", tok.Name, now.UnixNano())},
			EventTime:  metav1.NewMicroTime(now),
			Regarding: corev1.ObjectReference{APIVersion: scimv1.GroupVersion.String(), Kind: "ScimToken",
				Namespace: tok.Namespace, Name: tok.Name, UID: tok.UID},
			Type: corev1.EventTypeNormal, Reason: EventActivity, Action: "Provision",
			Note:                fmt.Sprintf("SCIM writes in the last %s: %s", a.interval, summary(c)),
			ReportingController: ActivityController, ReportingInstance: a.instance,
		}
		// Best effort, like any event: a lost summary loses no data.
		_ = a.client.Create(ctx, ev)
	}
}

// ActivityController is the reportingController of the activity events.
const ActivityController = "scim.helpdesk.dev/scim-server"

// summary renders counts in a stable order: "3 users created, 1 group deleted".
func summary(c map[string]int) string {
	parts := make([]string, 0, len(c))
	for _, what := range slices.Sorted(maps.Keys(c)) {
		n := c[what]
		if n == 1 {
			what = strings.Replace(what, "s ", " ", 1) // "users created" -> "user created"
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, what))
	}
	return strings.Join(parts, ", ")
}

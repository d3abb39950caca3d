package repository

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Reasons of the Warning events the SCIM server leaves on what it accepted
// leniently (docs/conformance.md): the request succeeded, and the event
// says what an operator may want to look at.
const (
	// EventEmailNotAnAddress: a user's emails[].value is not an RFC 5321
	// address; it is stored as sent (RFC 7643 §4.1.2 says SHOULD).
	EventEmailNotAnAddress = "EmailNotAnAddress"
	// EventMemberSkipped: member ids that are not users of the tenant were
	// left out of a group while the rest of the request was applied.
	EventMemberSkipped = "MemberSkipped"
)

// maxNoteBytes keeps event notes under the events API's 1 kB limit.
const maxNoteBytes = 1000

// Warn records a Warning event on obj (a ProvisionedUser or
// ProvisionedGroup the SCIM server just wrote). Best effort, like any
// event: a lost warning loses no data.
func (r *Repository) Warn(ctx context.Context, obj client.Object, kind, reason, note string) {
	if obj == nil || obj.GetName() == "" {
		return
	}
	if len(note) > maxNoteBytes {
		note = note[:maxNoteBytes-3] + "..."
	}
	instance := "scim-server"
	if i := r.Activity.Instance(); i != "" {
		instance = i
	}
	now := r.now()
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: obj.GetNamespace(), Name: fmt.Sprintf("%s.%x", obj.GetName(), now.UnixNano())},
		EventTime:  metav1.NewMicroTime(now),
		Regarding: corev1.ObjectReference{APIVersion: scimv1.GroupVersion.String(), Kind: kind,
			Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID()},
		Type: corev1.EventTypeWarning, Reason: reason, Action: "Provision", Note: note,
		ReportingController: ActivityController, ReportingInstance: instance,
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = r.Client.Create(ctx, ev)
}

// NotAddresses returns the emails[].value of spec that are not RFC 5321
// addresses (a local part, "@", a domain; RFC 5322 syntax as net/mail reads
// it, without a display name).
func NotAddresses(spec *scimv1.ProvisionedUserSpec) []string {
	var out []string
	for _, e := range spec.Emails {
		if e.Value != "" && !isAddress(e.Value) {
			out = append(out, e.Value)
		}
	}
	return out
}

func isAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s && strings.Contains(s, "@")
}

// KnownMembers checks the ids that ops add or make members against the
// users of the tenant. Ids that are not users of this tenant (a group id,
// an id of another tenant, a stale or made-up id) are left out of the
// returned operations and listed in skipped, so that one stale id does not
// block the other members of a request; an id of another tenant is never
// recorded. Removals are kept as sent: removing a non-member is a no-op.
func (r *Repository) KnownMembers(ctx context.Context, namespace string, ops []patch.MemberOp) (known []patch.MemberOp, skipped []string, err error) {
	verdict := map[string]bool{}
	for _, op := range ops {
		if op.Kind != patch.MemberAdd && op.Kind != patch.MemberReplace {
			known = append(known, op)
			continue
		}
		ids := make([]string, 0, len(op.IDs))
		for _, id := range op.IDs {
			ok, seen := verdict[id]
			if !seen {
				if _, err := r.CachedUser(ctx, namespace, id); err != nil {
					if e, isSCIM := scimerr.As(err); !isSCIM || e.Status != 404 {
						return nil, nil, err
					}
					skipped = append(skipped, id)
				} else {
					ok = true
				}
				verdict[id] = ok
			}
			if ok {
				ids = append(ids, id)
			}
		}
		var displays map[string]string
		for _, id := range ids {
			if d, ok := op.Displays[id]; ok && d != "" {
				if len(d) > scimv1.MaxMemberDisplayBytes {
					return nil, nil, scimerr.InvalidValue("the display of member %q is %d bytes long; at most %d are stored",
						truncateID(id), len(d), scimv1.MaxMemberDisplayBytes)
				}
				if displays == nil {
					displays = map[string]string{}
				}
				displays[id] = d
			}
		}
		switch {
		case len(ids) > 0:
			known = append(known, patch.MemberOp{Kind: op.Kind, IDs: ids, Displays: displays})
		case op.Kind == patch.MemberReplace:
			// Every id was unknown: the membership becomes empty, as the
			// client asked for a list none of whose ids are members.
			known = append(known, patch.MemberOp{Kind: patch.MemberClear})
		}
	}
	return known, skipped, nil
}

// truncateID shortens an id for a message.
func truncateID(id string) string {
	if len(id) > 80 {
		return id[:80] + "..."
	}
	return id
}

// SkippedNote is the note of an EventMemberSkipped event.
func SkippedNote(ids []string) string {
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = fmt.Sprintf("%q", truncateID(id))
	}
	return fmt.Sprintf("skipped %d member id(s) that are not users of this tenant, applied the rest of the request: %s",
		len(ids), strings.Join(quoted, ", "))
}

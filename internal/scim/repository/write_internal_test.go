package repository

import (
	"context"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/kscheme"
)

// stepLog records the write path's steps, in order.
type stepLog struct{ steps []string }

func (l *stepLog) add(step string) { l.steps = append(l.steps, step) }

// loggedNames is a uniqueNames that records each call and agrees to all.
type loggedNames struct{ log *stepLog }

func (n loggedNames) KnownHolder(context.Context, string, string, string) error {
	n.log.add("known holder")
	return nil
}

func (n loggedNames) Claim(context.Context, string, string, string) error {
	n.log.add("claim")
	return nil
}

func (n loggedNames) RetireFirst(context.Context, client.Object, string) error {
	n.log.add("retire first id")
	return nil
}

func (n loggedNames) Fence(context.Context, string, string, string) error {
	n.log.add("fence")
	return nil
}

func (n loggedNames) CheckFirst(context.Context, string, string, string) error {
	n.log.add("check first id")
	return nil
}

func (n loggedNames) Release(_ context.Context, _, value, _ string) {
	n.log.add("release " + value)
}

// TestCommitOrder: a rename goes through every step of the write path, in
// the one order the uniqueness handshake and read-your-writes need; the
// caller only describes the change.
func TestCommitOrder(t *testing.T) {
	ctx := context.Background()
	u := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "u1"},
		Spec: scimv1.ProvisionedUserSpec{UserName: "old@example.test"}}
	c := fake.NewClientBuilder().WithScheme(kscheme.New()).WithObjects(u.DeepCopy()).Build()
	activity := NewActivity(c, "test", 0)
	r := &Repository{Cache: c, Live: c, Client: c, Activity: activity}
	log := &stepLog{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
		t.Fatal(err)
	}
	u.Spec.UserName = "new@example.test"
	sent, err := r.commit(ctx, change{p: Principal{Namespace: "t", TokenName: "tok"}, obj: u,
		send: func(ctx context.Context, o client.Object) error {
			if _, stamped := o.GetAnnotations()[AnnotationLastModified]; stamped {
				log.add("stamp")
			}
			log.add("write")
			return c.Update(ctx, o)
		},
		name:   &nameChange{guard: loggedNames{log}, from: "old@example.test", to: "new@example.test", hold: byClaim},
		counts: []count{{"users updated", 1}}})
	if !sent || err != nil {
		t.Fatalf("commit: sent %v, %v", sent, err)
	}
	want := []string{"known holder", "claim", "retire first id", "stamp", "write", "fence", "release old@example.test"}
	if !slices.Equal(log.steps, want) {
		t.Errorf("steps %q, want %q", log.steps, want)
	}
	if got := activity.Counted("t", "tok"); got["users updated"] != 1 || len(got) != 1 {
		t.Errorf("activity counted %v, want one user updated", got)
	}
}

// TestWritesWaitForTheirIndex: a write answers only once the index its
// kind is read through holds it, so that the next request on this replica
// finds it: a filter (user index), a user's groups (member index).
func TestWritesWaitForTheirIndex(t *testing.T) {
	signals := NewCacheSignals()
	r := &Repository{Users: NewUserIndex(signals), Members: NewMemberIndex(signals)}
	user := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Namespace: "t1", Name: "u1", ResourceVersion: "5"}}
	shard := &scimv1.GroupMembership{ObjectMeta: metav1.ObjectMeta{Namespace: "t1", Name: "g-0", ResourceVersion: "7"},
		Spec: scimv1.GroupMembershipSpec{Group: "g", Members: []string{"u1"}}}
	for _, o := range []client.Object{user, shard} {
		if r.indexed(o, o.GetResourceVersion()) {
			t.Errorf("%T at %s counts as indexed before its index saw it", o, o.GetResourceVersion())
		}
	}
	r.Users.Handler().OnAdd(user, false)
	r.Members.Handler().OnAdd(shard, false)
	for _, o := range []client.Object{user, shard} {
		if !r.indexed(o, o.GetResourceVersion()) {
			t.Errorf("%T at %s: not indexed after its index saw it", o, o.GetResourceVersion())
		}
	}
	if got, _ := r.GroupsOf(context.Background(), "t1", "u1"); !slices.Equal(got, []string{"g"}) {
		t.Errorf("GroupsOf after the shard was indexed: %v", got)
	}
}

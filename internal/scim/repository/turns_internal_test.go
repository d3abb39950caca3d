package repository

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
)

func TestTurns(t *testing.T) {
	var tr turns
	ctx := context.Background()
	first, err := tr.take(ctx, "ns/a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tr.take(ctx, "ns/b")
	if err != nil {
		t.Fatalf("another group has a turn of its own: %v", err)
	}
	other()

	got := make(chan func(), 1)
	go func() {
		next, err := tr.take(ctx, "ns/a")
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- next
	}()
	select {
	case <-got:
		t.Fatal("a second change of the group ran while the first held its turn")
	case <-time.After(50 * time.Millisecond):
	}

	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tr.take(gone, "ns/a"); err == nil {
		t.Fatal("a waiter whose client went away must give up")
	}

	first()
	next, ok := <-got
	if !ok {
		t.FailNow()
	}
	next()
	if n := tr.pending(); n != 0 {
		t.Errorf("%d groups still hold turns after every change ended", n)
	}
}

// TestApplyMembersWaitsForTheGroupsTurn: a member change of a group whose
// turn another change holds waits for it (here until its client goes
// away), before it reads or writes anything: this repository has no
// cache or client at all.
func TestApplyMembersWaitsForTheGroupsTurn(t *testing.T) {
	r := &Repository{}
	g := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "g1"}}
	release, err := r.memberTurns.take(context.Background(), "tenant-a/g1")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ops := []patch.MemberOp{{Kind: patch.MemberAdd, IDs: []string{"u1"}}}
	if _, err := r.ApplyMembers(ctx, Principal{Namespace: "tenant-a"}, g, ops); err == nil {
		t.Fatal("a change of a group whose turn is held went ahead")
	}
	if n := r.memberTurns.pending(); n != 1 {
		t.Errorf("after the waiter gave up, want only the holder's turn, have %d", n)
	}
}

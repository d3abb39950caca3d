package repository

import (
	"context"
	"testing"
	"time"
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

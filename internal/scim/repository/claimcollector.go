package repository

import (
	"context"
	"time"

	"github.com/go-logr/logr"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository/uniqueness"
)

// ClaimCollector removes NameClaims that no live object holds (see
// uniqueness.Collector), for the users and groups of Repo.
type ClaimCollector struct {
	Repo *Repository
	// Every is the time between passes (default 10 minutes).
	Every time.Duration
	// Grace is how long after its claimedAt a claim is left alone whatever
	// its owner says (default 10 minutes).
	Grace time.Duration
	// Namespace limits a pass to one namespace; "" is every namespace the
	// cache sees.
	Namespace string
	Log       logr.Logger
}

func (c *ClaimCollector) collector() *uniqueness.Collector {
	return &uniqueness.Collector{
		Guards: map[scimv1.ClaimKind]uniqueness.Guard{
			scimv1.ClaimUserName:    c.Repo.userKind().guard,
			scimv1.ClaimDisplayName: c.Repo.groupKind().guard,
		},
		Every: c.Every, Grace: c.Grace, Namespace: c.Namespace, Log: c.Log,
	}
}

// NeedLeaderElection is true: one collector per installation is enough.
func (c *ClaimCollector) NeedLeaderElection() bool { return true }

// Start runs passes until ctx ends.
func (c *ClaimCollector) Start(ctx context.Context) error { return c.collector().Start(ctx) }

// Collect makes one pass and returns how many claims it deleted or
// released.
func (c *ClaimCollector) Collect(ctx context.Context) (int, error) { return c.collector().Collect(ctx) }

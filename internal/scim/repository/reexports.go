package repository

import (
	"github.com/scim-operator/scim-operator/internal/scim/repository/activity"
	"github.com/scim-operator/scim-operator/internal/scim/repository/apierror"
	"github.com/scim-operator/scim-operator/internal/scim/repository/consistency"
	"github.com/scim-operator/scim-operator/internal/scim/repository/convert"
	"github.com/scim-operator/scim-operator/internal/scim/repository/membership"
	"github.com/scim-operator/scim-operator/internal/scim/repository/uniqueness"
	"github.com/scim-operator/scim-operator/internal/scim/repository/userindex"
)

// The names the SCIM server, the controllers and the wiring use, kept here
// so that they need to know only the facade.

// ErrUnavailable marks failures of the API server itself (503 with
// Retry-After): see apierror.
var ErrUnavailable = apierror.ErrUnavailable

// Conversion between SCIM documents and specs: see convert.
const (
	UserURN        = convert.UserURN
	EnterpriseURN  = convert.EnterpriseURN
	GroupURN       = convert.GroupURN
	MaxUserNameKey = convert.MaxUserNameKey
)

// UserDoc renders a user spec as a canonical SCIM document (convert.UserDoc).
var UserDoc = convert.UserDoc

// UserSpec builds a user spec from a canonical SCIM document (convert.UserSpec).
var UserSpec = convert.UserSpec

// GroupDoc renders a group spec as a canonical SCIM document (convert.GroupDoc).
var GroupDoc = convert.GroupDoc

// GroupSpec builds a group spec from a canonical SCIM document (convert.GroupSpec).
var GroupSpec = convert.GroupSpec

// ExtensionAttributesFrom encodes an extension's attributes for the spec
// (convert.ExtensionAttributesFrom).
var ExtensionAttributesFrom = convert.ExtensionAttributesFrom

// FirstUserID is the id of the first user with a userName in a namespace
// (uniqueness.FirstUserID).
var FirstUserID = uniqueness.FirstUserID

// ClaimName is the NameClaim object name for a unique value
// (uniqueness.ClaimName).
var ClaimName = uniqueness.ClaimName

// UserIndex finds users by userName, externalId and email (userindex.Index).
type UserIndex = userindex.Index

// MemberIndex finds the shards and groups of a member (membership.Index).
type MemberIndex = membership.Index

// NewMemberIndex returns an empty member index that wakes signals after
// each change (membership.NewIndex).
var NewMemberIndex = membership.NewIndex

// CacheSignals wakes writes waiting for their own cache (consistency.Signals).
type CacheSignals = consistency.Signals

// NewUserIndex returns an empty user index that wakes signals after each
// change (userindex.New).
var NewUserIndex = userindex.New

// NewCacheSignals returns signals to install on the informers
// (consistency.NewSignals).
var NewCacheSignals = consistency.NewSignals

// ShardName is the name of a group's n-th membership shard
// (membership.ShardName).
var ShardName = membership.ShardName

// Activity counts SCIM writes per token for the summary events
// (activity.Recorder).
type Activity = activity.Recorder

// NewActivity reports every interval for the replica named instance
// (activity.NewRecorder).
var NewActivity = activity.NewRecorder

// The summary events: see activity.
const (
	// EventActivity is the reason of the periodic summary event on a ScimToken.
	EventActivity = activity.EventActivity
	// ActivityController is the reportingController of the activity events.
	ActivityController = activity.ActivityController
)

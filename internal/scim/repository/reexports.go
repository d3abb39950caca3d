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

var (
	UserDoc                 = convert.UserDoc
	UserSpec                = convert.UserSpec
	GroupDoc                = convert.GroupDoc
	GroupSpec               = convert.GroupSpec
	ExtensionAttributesFrom = convert.ExtensionAttributesFrom
)

// Uniqueness: see uniqueness.
var (
	FirstUserID = uniqueness.FirstUserID
	ClaimName   = uniqueness.ClaimName
)

// The user index and read-your-writes: see userindex and consistency.
type (
	UserIndex    = userindex.Index
	CacheSignals = consistency.Signals
)

var (
	NewUserIndex    = userindex.New
	NewCacheSignals = consistency.NewSignals
)

// Membership shards: see membership.
var ShardName = membership.ShardName

// Activity events: see activity.
type Activity = activity.Recorder

var NewActivity = activity.NewRecorder

const (
	EventActivity      = activity.EventActivity
	ActivityController = activity.ActivityController
)

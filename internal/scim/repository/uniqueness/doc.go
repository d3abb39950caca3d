// Package uniqueness keeps userName and group displayName unique across
// replicas: NameClaims, first ids, and the handshake between them. The
// repository reaches it through a Guard per attribute; what the package
// needs to know about users and groups comes through the Holders interface.
//
// Kubernetes refuses a second object with the same name, and that is the
// only uniqueness it offers. Two ways use it:
//
//   - First ids (users only). A user whose userName was never used in the
//     tenant is created under FirstUserID(key, namespace, userName). Two
//     racing creates of one userName then collide on the object name, and a
//     create costs one API write: the common case of a provisioning cycle.
//   - NameClaims. Everything else (a rename, a userName used before, every
//     group) first creates a NameClaim named after the value (ClaimName).
//
// # The handshake
//
// The two meet when a claimed value is also some user's first id. Each side
// writes first and then reads the other with a linearizable GET: a create
// under a first id looks for a claim (Guard.CheckFirst), a claim looks for
// the first-id user (inside Guard.Claim). Of two racing writers at least
// one sees the other and backs off with 409.
//
// The same handshake fences NameClaims themselves. A claim whose owner does
// not hold the value yet is judged stale by the clock (claimGrace), and
// clocks and requests can be slow, so the clock alone decides nothing:
//
//   - whoever writes an object under a claim reads the claim again
//     afterwards (Guard.StillClaimed) and undoes its write if the claim
//     changed hands;
//   - whoever takes a claim over reads the previous owner again afterwards
//     and gives the claim back if that owner holds the value by then;
//   - the Collector, which deletes claims no live object holds, takes a
//     claim before deleting it and is fenced like a takeover.
//
// Of a slow writer and a taker at least one sees the other; clock skew
// between replicas can cost a 409, never a duplicate.
//
// # Renames and deletions
//
// A first id is never given to a second user (RFC 7643 §3.1: ids are not
// reassignable): before its user is renamed or deleted, the claim on the
// value is marked retired (Guard.RetireFirst), and a retired claim sends
// later creates of the value to a random id. A writer gives a claim up
// (Guard.Release) only after its write is done, or when the API server
// certainly refused the write (apierror.DefiniteRefusal): after any other
// failure the write may have landed, and a stale claim is taken over after
// claimGrace anyway.
//
// Values are compared under namekey.Key, the one canonical form of a name.
package uniqueness

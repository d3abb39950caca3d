// Package patch decodes and applies SCIM PATCH requests (RFC 7644 §3.5.2)
// to canonical resource documents (see package schema).
//
// Decode checks the PatchOp envelope; Apply runs the operations against a
// document atomically and reports whether it changed, so callers can skip
// the write, and, for groups whose membership is stored elsewhere, which
// membership changes were asked for.
//
// The rules absorb the dialects of Microsoft Entra ID, Okta and the
// Microsoft SCIM validators described in docs/entra-interop.md §2: op names
// in any case, booleans as strings, path-less values whose keys are paths,
// value paths that create the element they name, member removal by value
// array, several shapes of the manager reference, and null or "" clearing
// an attribute. Removing something absent succeeds without change, so a
// retried request is harmless.
package patch

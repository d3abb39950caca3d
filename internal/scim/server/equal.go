package server

import "reflect"

// docEqual compares canonical documents; both come from the same
// conversion, so a deep comparison is exact.
func docEqual(a, b map[string]any) bool { return reflect.DeepEqual(a, b) }

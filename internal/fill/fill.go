// Package fill sets every exported field of a value to a value of its
// own, for tests of codecs: a field the codec forgets reads back
// different.
package fill

import (
	"errors"
	"reflect"
)

// Fill sets every exported field of v (followed through pointers,
// structs, slices of two and arrays) to a value of its own, counting in
// n.
func Fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		Fill(v.Elem(), n)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				Fill(v.Field(i), n)
			}
		}
	case reflect.String:
		v.SetString("s\x00\xff" + string(rune('a'+*n%26)))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Int, reflect.Int64:
		v.SetInt(-int64(*n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			Fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			Fill(v.Index(i), n)
		}
	case reflect.Interface: // an error
		v.Set(reflect.ValueOf(errors.New("refused")))
	default:
		panic("fill: " + v.Kind().String())
	}
}

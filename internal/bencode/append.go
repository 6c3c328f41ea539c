package bencode

import "strconv"

// The Append functions write one bencode value to the end of dst and return
// the extended slice, like strconv.AppendInt. They use no reflection and do
// not allocate when dst has room, so a hot path can build a reply into a
// reused buffer. A caller assembling a dictionary writes 'd', then each key
// with AppendString followed by its value, keys in increasing byte order, then
// 'e'; a list is 'l', the values, 'e'.

// AppendString appends s as a bencode byte string, e.g. "4:spam".
func AppendString(dst []byte, s string) []byte {
	dst = strconv.AppendUint(dst, uint64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

// AppendBytes appends b as a bencode byte string, e.g. "4:spam".
func AppendBytes(dst, b []byte) []byte {
	dst = strconv.AppendUint(dst, uint64(len(b)), 10)
	dst = append(dst, ':')
	return append(dst, b...)
}

// AppendInt appends n as a bencode integer, e.g. "i-3e".
func AppendInt(dst []byte, n int64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, 'e')
}

// AppendUint appends n as a bencode integer, e.g. "i42e".
func AppendUint(dst []byte, n uint64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendUint(dst, n, 10)
	return append(dst, 'e')
}

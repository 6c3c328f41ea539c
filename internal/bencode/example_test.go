package bencode_test

import (
	"crypto/sha1"
	"fmt"

	"warden/internal/bencode"
)

func ExampleMarshal() {
	type file struct {
		Path   []string `bencode:"path"`
		Length int64    `bencode:"length"`
	}
	// Keys come out sorted ("length" before "path"), as BEP 3 requires,
	// whatever the order of the struct's fields.
	b, err := bencode.Marshal(file{Path: []string{"dir", "a.txt"}, Length: 12})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", b)
	// Output: d6:lengthi12e4:pathl3:dir5:a.txtee
}

func ExampleUnmarshal() {
	var reply struct {
		Interval int    `bencode:"interval"`
		Peers    []byte `bencode:"peers"`
	}
	err := bencode.Unmarshal([]byte("d8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1e"), &reply)
	fmt.Println(reply.Interval, reply.Peers, err)

	// Strict BEP 3: leading zeros are an error, and the error says where.
	err = bencode.Unmarshal([]byte("d8:intervali01800ee"), &reply)
	fmt.Println(err)
	// Output:
	// 1800 [127 0 0 1 26 225] <nil>
	// bencode: at offset 12: integer has leading zero
}

func ExampleAppendString() {
	// A failure reply built without reflection or allocation.
	buf := make([]byte, 0, 64)
	buf = append(buf, 'd')
	buf = bencode.AppendString(buf, "failure reason")
	buf = bencode.AppendString(buf, "torrent not registered")
	buf = bencode.AppendString(buf, "retry in")
	buf = bencode.AppendInt(buf, 60)
	buf = append(buf, 'e')
	fmt.Printf("%s\n", buf)
	// Output: d14:failure reason22:torrent not registered8:retry ini60ee
}

func ExampleDecoder() {
	// A .torrent whose info dictionary has its keys out of order.
	data := []byte("d8:announce14:http://t.ex/an4:infod4:name1:x6:lengthi5eee")
	var t struct {
		Announce string             `bencode:"announce"`
		Info     bencode.RawMessage `bencode:"info"`
	}
	fmt.Println(bencode.Unmarshal(data, &t))

	dec := bencode.Decoder{AllowUnsortedKeys: true, MaxInputBytes: 10 << 20}
	if err := dec.Unmarshal(data, &t); err != nil {
		panic(err)
	}
	fmt.Printf("%s %x\n", t.Info, sha1.Sum(t.Info)) // hashed as written
	// Output:
	// bencode: at offset 44: dict key "length" is not sorted after "name"
	// d4:name1:x6:lengthi5ee 5e4eff02136f5aa63b7065ed6bb02ca0cbf1afda
}

package protocolnative

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary request frames (RequestHeader + record)
// to the decoder. It must never panic; whatever it accepts must re-encode to
// a frame that decodes to the same request, and to the very input bytes
// when the input used only canonical encodings.
func FuzzDecodeRequest(f *testing.F) {
	for i, req := range sampleRequests() {
		framed, err := appendRequest(nil, int32(i+1), req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(framed[4:])
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0})          // lone check
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 14, 0, 0, 0, 2, 0, 0xff, 0xff, 0xff}) // cut multi
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 101, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, frame []byte) {
		xid, req, canonical, err := decodeRequestCanonical(frame)
		if err != nil {
			if req != nil {
				t.Fatalf("error %v with a request %#v", err, req)
			}
			return
		}
		framed, err := appendRequest(nil, xid, req)
		if err != nil {
			t.Fatalf("decoded %#v does not re-encode: %v", req, err)
		}
		enc := framed[4:]
		if canonical && !bytes.Equal(enc, frame) {
			t.Fatalf("canonical input re-encoded differently:\n in  %x\n out %x", frame, enc)
		}
		xid2, req2, canonical2, err := decodeRequestCanonical(enc)
		if err != nil || xid2 != xid || !canonical2 {
			t.Fatalf("re-encoded frame: xid %d canonical %v err %v", xid2, canonical2, err)
		}
		if !reflect.DeepEqual(req, req2) {
			t.Fatalf("round trip changed the request:\n %#v\n %#v", req, req2)
		}
	})
}

package send_test

import (
	"bytes"
	"encoding/base64"
	"io"
)

func decodeBase64(b []byte) ([]byte, error) {
	return io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(b)))
}

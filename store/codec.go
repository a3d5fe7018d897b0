package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// jsonV1 marks a value as JSON, the first encoding, which files written
// before the binary one (binV2, codec_bin.go) still hold: records are
// rewritten only when they change, so both are read and only binV2 is
// written.
const jsonV1 = 1

// encode returns a new slice holding rec, which bbolt may keep until commit.
// A type with no binary plan is refused rather than stored in a form the
// format manifest (testdata/format.golden) does not hold.
func encode(rec any) ([]byte, error) {
	v, err := encodeBinary(rec)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", rec, err)
	}
	return v, nil
}

// decode fills rec from v. Nothing in rec points into v, so rec outlives the
// transaction v came from.
func decode(v []byte, rec any) error {
	if len(v) == 0 {
		return errors.New("decode: empty value")
	}
	var err error
	switch v[0] {
	case jsonV1:
		err = decodeJSON(v[1:], rec)
	case binV2:
		err = decodeBinary(v[1:], rec)
	default:
		err = fmt.Errorf("unknown encoding %d", v[0])
	}
	if err != nil {
		return fmt.Errorf("decode %T: %w", rec, err)
	}
	return nil
}

// encodeCount encodes a counter. Counters are read and rewritten on hot
// paths, so they skip the record codec.
func encodeCount(n int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(n))
}

// decodeCount decodes a counter; a missing one is zero.
func decodeCount(v []byte) (int64, error) {
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return int64(binary.BigEndian.Uint64(v)), nil
	default:
		return 0, fmt.Errorf("decode count: %d bytes, want 8", len(v))
	}
}

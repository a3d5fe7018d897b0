package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// jsonV1 marks a value as JSON, the first encoding. Values written since
// are binary (binV2, codec_bin.go) unless their type has no binary plan;
// both are read, so a file never needs a bulk rewrite.
const jsonV1 = 1

// encode returns a new slice holding rec, which bbolt may keep until commit.
func encode(rec any) ([]byte, error) {
	if v := encodeBinary(rec); v != nil {
		return v, nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", rec, err)
	}
	v := make([]byte, 1+len(b))
	v[0] = jsonV1
	copy(v[1:], b)
	return v, nil
}

// decode fills rec from v. Nothing in rec points into v, so rec outlives the
// transaction v came from.
func decode(v []byte, rec any) error {
	if len(v) == 0 {
		return errors.New("decode: empty value")
	}
	switch v[0] {
	case jsonV1:
		if err := json.Unmarshal(v[1:], rec); err != nil {
			return fmt.Errorf("decode %T: %w", rec, err)
		}
	case binV2:
		if err := decodeBinary(v[1:], rec); err != nil {
			return fmt.Errorf("decode %T: %w", rec, err)
		}
	default:
		return fmt.Errorf("decode %T: unknown encoding %d", rec, v[0])
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

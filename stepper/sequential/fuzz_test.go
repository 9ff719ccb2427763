package sequential

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// FuzzIncrements feeds arbitrary samples to the counter differencing: it
// must not panic, increments are never negative nor NaN, and an interval
// without a sample has nothing.
func FuzzIncrements(f *testing.F) {
	f.Add([]byte{0, 1, 10, 0, 5, 20, 0, 9, 5, 1, 3, 7})
	f.Add([]byte{0, 0xff, 0xff, 1, 0x80, 0, 2, 12, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ss [3]Series
		for len(data) >= 3 {
			s := &ss[int(data[0])%len(ss)]
			offset := float64(int8(data[1])) / 8 // -16 s .. +16 s
			var v float64
			switch data[2] {
			case 0xff:
				v = math.NaN()
			case 0xfe:
				v = math.Inf(1)
			case 0xfd:
				v = -1
			default:
				v = float64(data[2])
				if len(data) >= 11 && data[2] == 0xfc {
					v = math.Float64frombits(binary.LittleEndian.Uint64(data[3:11]))
					data = data[8:]
				}
			}
			s.Samples = append(s.Samples, Sample{At: at(offset), Value: v})
			data = data[3:]
		}
		ends := []time.Time{at(5), at(10), at(15)}
		for _, c := range Increments(ss[:], t0, ends) {
			if !(c.Value >= 0) || (!c.Seen && c.Value != 0) {
				t.Fatalf("count %+v", c)
			}
		}
		for _, a := range ArmCounts(ss[:1], ss[1:2], t0, ends) {
			if !(a.Requests >= 0 && a.Bad >= 0) {
				t.Fatalf("arm %+v", a)
			}
		}
		for _, a := range SlowCounts(ss[:1], ss[1:2], t0, ends) {
			if !(a.Bad >= 0 && a.Bad <= a.Requests || a.Missing) {
				t.Fatalf("slow arm %+v", a)
			}
		}
	})
}

// FuzzUpdate feeds arbitrary counts to the test: the e-value, p-value and
// bound stay numbers in range, and the state stays encodable.
func FuzzUpdate(f *testing.F) {
	f.Add(50.0, 5.0, 200.0, 0.0, 50.0, 1.0, 200.0, 9.0)
	f.Add(1e300, 1e300, 1e-300, 0.0, math.NaN(), 1.0, -1.0, math.Inf(1))
	f.Fuzz(func(t *testing.T, cn, cx, sn, sx, cn2, cx2, sn2, sx2 float64) {
		s, err := New(NewConfig(0.01, 99, 0.2, "error rate"))
		if err != nil {
			t.Fatal(err)
		}
		s = s.Update(iv(cn, cx, sn, sx)).Update(iv(cn2, cx2, sn2, sx2)).Update(iv(cn, cx2, sn2, sx))
		d := s.Decide()
		if !(d.EValue >= 0) || !(d.PValue > 0 && d.PValue <= 1) || !(d.LowerBound >= 0) || math.IsNaN(s.LogE()) || !(d.Phi >= 1) {
			t.Fatalf("decision %+v", d)
		}
		for _, v := range s.Grid {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("grid %v", s.Grid)
			}
		}
	})
}

package sequential

import "math"

// The grid. Every ratio the test evaluates is a point r0·ρ^j of one
// logarithmic grid with ρ = 1000^(1/70) ≈ 1.1037 (70 points per factor
// 1000, about 10% apart), where r0 = 1 + tolerance:
//
//   - the alternatives of the mixture are r0·m_k with m_k = ρ^(1+3k),
//     k = 0..23: 24 ratios log-spaced from 1.104 to 1000 (each 1.345 times
//     the previous), with equal weights 1/24;
//   - the rungs of the lower bound are r0' = r0·ρ^j for j = -25..70 (those
//     at least 1), each tested against its own alternatives r0'·m_k.
//
// Because the rungs and the alternatives share the grid, the log likelihood
// ratio of any alternative against any rung is a difference of two running
// sums (see [State.Grid]), so the state holds one sum per grid point, not one
// per (rung, alternative) pair.
const (
	// gridPerThousand is the number of grid steps per factor 1000.
	gridPerThousand = 70
	// numAlternatives is the size of the mixture.
	numAlternatives = 24
	// altStride is the grid distance between neighbouring alternatives.
	altStride = 3
	// altFirst is the grid distance from a rung to its first alternative.
	altFirst = 1
	// rungsBelow is how far the ladder of the lower bound reaches below r0:
	// ρ^-25 ≈ 1/11.8, enough to reach 1 for any tolerance below 1000%.
	rungsBelow = 25
	// rungsAbove is how far the ladder reaches above r0 (a factor 1000).
	rungsAbove = 70
	// lastAlt is the grid offset of the largest alternative of a rung.
	lastAlt = altFirst + altStride*(numAlternatives-1)
	// GridSize is the number of points of the grid: j = -25..140.
	GridSize = rungsBelow + rungsAbove + lastAlt + 1
)

var (
	// logRho is log ρ.
	logRho = math.Log(1000) / gridPerThousand
	// rhoPow[i] is ρ^(i-rungsBelow), the grid point i relative to r0.
	rhoPow [GridSize]float64
	// logM[k] is log m_k, the log of alternative k relative to its rung.
	logM [numAlternatives]float64
	// logNumAlternatives is the log of the mixture's size: the weights are
	// 1/24.
	logNumAlternatives = math.Log(numAlternatives)
)

func init() {
	for i := range rhoPow {
		rhoPow[i] = math.Exp(float64(i-rungsBelow) * logRho)
	}
	for k := range logM {
		logM[k] = float64(altFirst+altStride*k) * logRho
	}
}

// Alternatives returns the mixture's alternatives m_k (as multiples of the
// null's ratio r0): 24 values log-spaced from 1.104 to 1000.
func Alternatives() []float64 {
	m := make([]float64, numAlternatives)
	for k := range m {
		m[k] = math.Exp(logM[k])
	}
	return m
}

// logSumExp returns log(sum exp(v[k])) without overflow: the largest term
// is factored out, so every exp has a non-positive argument.
//
// Example: logSumExp({1000, 1000}) = 1000 + log 2 ≈ 1000.693, where the
// naive sum of exponentials overflows to +Inf.
func logSumExp(v []float64) float64 {
	top := math.Inf(-1)
	for _, x := range v {
		top = max(top, x)
	}
	if math.IsInf(top, 0) {
		return top
	}
	var s float64
	for _, x := range v {
		s += math.Exp(x - top)
	}
	return top + math.Log(s)
}

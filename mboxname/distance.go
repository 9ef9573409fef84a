package mboxname

// EditDistance is the Levenshtein distance of a and b in bytes, or limit
// when it is at least limit (limit <= 0: no limit). It measures how near
// a name typed is to the names that exist, for "did you mean" and
// "nearest" suggestions.
func EditDistance(a, b string, limit int) int {
	if limit <= 0 {
		limit = len(a) + len(b) + 1
	}
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

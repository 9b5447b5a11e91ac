package repo

// namedCommits returns the commits that cm names, in its related list and
// as its parent, that keep(c) accepts; never cm's own checksum self.
func namedCommits(self Checksum, cm *Commit, keep func(Checksum) bool) []Checksum {
	var out []Checksum
	for _, rel := range cm.Related {
		if rel.Commit != self && keep(rel.Commit) {
			out = append(out, rel.Commit)
		}
	}
	if cm.HasParent() && cm.Parent != self && keep(cm.Parent) {
		out = append(out, cm.Parent)
	}
	return out
}

// pathRanks gives each node the length of the longest path from it along
// edges: 0 for a node with no edges, else one more than the highest rank
// among the nodes its edges reach. Commits are content-addressed, so the
// graph has no cycles; the depth bound only guards against a broken one.
func pathRanks(nodes []Checksum, edges map[Checksum][]Checksum) map[Checksum]int {
	rank := make(map[Checksum]int, len(nodes))
	var rankOf func(c Checksum, depth int) int
	rankOf = func(c Checksum, depth int) int {
		if r, ok := rank[c]; ok {
			return r
		}
		r := 0
		if depth < len(nodes) {
			for _, n := range edges[c] {
				if nr := rankOf(n, depth+1) + 1; nr > r {
					r = nr
				}
			}
		}
		rank[c] = r
		return r
	}
	for _, c := range nodes {
		rankOf(c, 0)
	}
	return rank
}

package bedrock

import "strings"

// regionGroups maps the middle group of a four-part region name to its
// partition (us-gov-west-1 → aws-us-gov); three-part names are "aws" unless
// they start with "cn-".
var regionGroups = map[string]string{
	"gov":  "aws-us-gov",
	"iso":  "aws-iso",
	"isob": "aws-iso-b",
	"isoe": "aws-iso-e",
	"isof": "aws-iso-f",
}

// ValidRegion reports whether r is shaped like an AWS region name:
// area-direction-N (us-east-1, ap-southeast-7) or area-group-direction-N
// (us-gov-west-1, us-isob-east-1). Area is two letters, direction 3 to 12
// letters, N 1 to 99 without a leading zero. It is Warden's one region
// check: configuration, model ARNs, runtime host names and the CA's name
// constraints all use it.
func ValidRegion(r string) bool {
	_, ok := RegionPartition(r)
	return ok
}

// RegionPartition returns the partition a valid region belongs to.
func RegionPartition(r string) (partition string, ok bool) {
	parts := strings.Split(r, "-")
	if len(parts) != 3 && len(parts) != 4 {
		return "", false
	}
	area, dir, num := parts[0], parts[len(parts)-2], parts[len(parts)-1]
	if len(area) != 2 || !lowerLetters(area) || len(dir) < 3 || len(dir) > 12 || !lowerLetters(dir) ||
		len(num) < 1 || len(num) > 2 || num[0] < '1' || num[0] > '9' || (len(num) == 2 && (num[1] < '0' || num[1] > '9')) {
		return "", false
	}
	if len(parts) == 4 {
		p, ok := regionGroups[parts[1]]
		return p, ok
	}
	if area == "cn" {
		return "aws-cn", true
	}
	return "aws", true
}

// ValidRegionPattern reports whether p is a region pattern of the policy:
// "*", a region, or a region prefix ending in "*" ("eu-*", "us-east-*").
func ValidRegionPattern(p string) bool {
	if p == "*" || ValidRegion(p) {
		return true
	}
	body, ok := strings.CutSuffix(p, "*")
	if !ok || body == "" || len(body) > 32 {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func lowerLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// Package docs holds the test that keeps Warden's Markdown honest: every
// relative link resolves, every config key the docs name is in the schema,
// the README keeps to its sections and ARCHITECTURE.md lists every package.
package docs

// Package docs holds the test that keeps Warden's Markdown honest: every
// relative link resolves and every config key the docs name is in the schema.
package docs

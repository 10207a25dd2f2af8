package rest

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/chat5202ol/mop/pkg/apidoc"
)

// openAPICache lets clients and caches keep the document for five minutes and
// then revalidate it cheaply with the ETag (a deploy may change it).
const openAPICache = "public, max-age=300"

// openAPI serves the OpenAPI document of pkg/apidoc as JSON.
func openAPI(doc apidoc.JSON) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("Cache-Control", openAPICache)
		c.Header("ETag", doc.ETag)
		if etagMatch(c.GetHeader("If-None-Match"), doc.ETag) {
			c.Status(http.StatusNotModified)
			return
		}
		c.Data(http.StatusOK, "application/json", doc.Body)
	}
}

// etagMatch reports whether an If-None-Match header names etag (RFC 9110
// weak comparison: a W/ prefix does not matter, * matches anything).
func etagMatch(header, etag string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}

"""The HTTP API's routes, one router per function, built by a factory so that each resolver (the
function's own, and the one `lorapin.http.openapi` documents every route with) gets its own."""

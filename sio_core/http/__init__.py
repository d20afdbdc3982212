"""HTTP/1.1 for the server: connections (httptools), requests and responses, CORS, static
files. Nothing of Engine.IO: the layer above hands each connection a handler and, for an
upgrade, takes the connection over."""

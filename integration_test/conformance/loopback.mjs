// Preloaded into the suite's origin server (node --import ./loopback.mjs):
// the server calls listen(port) with no host, which would accept connections
// on every interface. This makes a listen call without a host bind to the
// loopback address only.
import http from 'node:http'

const listen = http.Server.prototype.listen

http.Server.prototype.listen = function (...args) {
  const portOnly = (typeof args[0] === 'number' || typeof args[0] === 'string') &&
    (args.length === 1 || typeof args[1] === 'function')
  if (portOnly) {
    args.splice(1, 0, '127.0.0.1')
  }
  return listen.apply(this, args)
}

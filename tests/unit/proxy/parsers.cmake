# Unit tests of the proxy's hand-written parsers: the TLS ClientHello reader
# (real OpenSSL hellos, re-framed) and the HTTP/1.1 request head parser.
agentsafe_add_unit_test(proxy_clienthello_test SOURCES test_clienthello.c
  LIBS agentsafe_proxy)
agentsafe_add_unit_test(proxy_http_parse_test SOURCES test_http_parse.c
  LIBS agentsafe_proxy)
# The server's first record (HelloRetryRequest or not) and the span of the
# checked first ClientHello.
agentsafe_add_unit_test(proxy_serverhello_test SOURCES test_serverhello.c
  LIBS agentsafe_proxy)

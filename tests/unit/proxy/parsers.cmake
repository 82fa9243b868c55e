# Unit tests of the proxy's hand-written parsers: the TLS ClientHello reader
# (real OpenSSL hellos, re-framed) and the HTTP/1.1 request head parser.
agentsafe_add_unit_test(proxy_clienthello_test SOURCES test_clienthello.c
  LIBS agentsafe_proxy)
agentsafe_add_unit_test(proxy_http_parse_test SOURCES test_http_parse.c
  LIBS agentsafe_proxy)

# --- fence: the NFLOG reader fed hand-built nfnetlink_log messages (no root);
# the rule batch test (fence_rules_and_packets_test) is registered in
# CMakeLists.txt above.
agentsafe_add_unit_test(fence_nflog_drop_records_test SOURCES test_fence_nflog.c
  LIBS agentsafe_launcher PkgConfig::JANSSON)

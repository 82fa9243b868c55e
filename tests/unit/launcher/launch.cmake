# --- agentsafe-launch: options, GPU decision, Docker request bodies ---
agentsafe_add_unit_test(launch_config_test SOURCES test_config.c
  LIBS agentsafe_launcher)

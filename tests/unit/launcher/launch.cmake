# --- agentsafe-launch: options, GPU decision, Docker request bodies ---
agentsafe_add_unit_test(launch_config_test SOURCES test_lcfg.c
  LIBS agentsafe_launcher)
agentsafe_add_unit_test(launch_gpu_decision_test SOURCES test_gpu.c
  LIBS agentsafe_launcher)
agentsafe_add_unit_test(launch_docker_body_test SOURCES test_docker_body.c
  LIBS agentsafe_launcher)
agentsafe_add_unit_test(launch_probe_script_test SOURCES test_probe.c
  LIBS agentsafe_launcher)
# The capability drop on this root test process: NET_ADMIN permitted, never
# effective outside raise/lower.
agentsafe_add_unit_test(launch_caps_net_admin_never_effective_test
  SOURCES test_caps.c LIBS agentsafe_launcher)

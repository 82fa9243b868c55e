# Compiler flags (the house style, CONTRIBUTING.md) and helpers every component's CMakeLists uses.

set(AGENTSAFE_WARNINGS
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wformat=2 -Werror)
set(AGENTSAFE_HARDENING -fstack-protector-strong -fPIE)
set(AGENTSAFE_LINK_HARDENING -pie -Wl,-z,relro,-z,now)

add_compile_definitions(_GNU_SOURCE)
add_compile_options(${AGENTSAFE_WARNINGS} ${AGENTSAFE_HARDENING})
add_link_options(${AGENTSAFE_LINK_HARDENING})

if(AGENTSAFE_SANITIZE)
  # _FORTIFY_SOURCE needs optimisation; -O1 keeps ASan reports readable.
  add_compile_options(-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined -D_FORTIFY_SOURCE=3)
  add_link_options(-fsanitize=address,undefined)
else()
  add_compile_options(-D_FORTIFY_SOURCE=3)
endif()

# libFuzzer needs the code under test instrumented for coverage feedback,
# not only the harness.
if(AGENTSAFE_LIBFUZZER)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

# agentsafe_add_unit_test(NAME SOURCES a.c b.c LIBS lib1 lib2)
# A cmocka test executable registered with ctest under the `unit` label.
function(agentsafe_add_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "unit;${T_LABELS}"
    ENVIRONMENT "AGENTSAFE_SOURCE_DIR=${PROJECT_SOURCE_DIR};AGENTSAFE_BUILD_DIR=${PROJECT_BINARY_DIR}")
endfunction()

# agentsafe_add_script_test(NAME SCRIPT path LABEL integration|e2e [TIMEOUT s])
# A bash/python test script that drives the real binaries in ${build}/bin.
function(agentsafe_add_script_test name)
  cmake_parse_arguments(T "" "SCRIPT;LABEL;TIMEOUT" "" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_test(NAME ${name} COMMAND ${T_SCRIPT})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABEL}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "AGENTSAFE_SOURCE_DIR=${PROJECT_SOURCE_DIR};AGENTSAFE_BUILD_DIR=${PROJECT_BINARY_DIR};AGENTSAFE_BIN=${PROJECT_BINARY_DIR}/bin")
endfunction()

# agentsafe_add_fuzzer(NAME SOURCES harness.c LIBS lib CORPUS dir)
# CORPUS is the committed seed directory in the source tree, replayed from
# there (a seed added or changed counts without re-running cmake).
# With AGENTSAFE_LIBFUZZER (clang) a libFuzzer binary; otherwise the harness is
# linked with a driver that replays the corpus, and ctest runs it under ASan/UBSan.
function(agentsafe_add_fuzzer name)
  cmake_parse_arguments(F "" "CORPUS" "SOURCES;LIBS" ${ARGN})
  if(AGENTSAFE_LIBFUZZER)
    add_executable(${name} ${F_SOURCES})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    # libFuzzer writes what it finds into its first corpus directory: a
    # build-tree one, so the committed seeds are read in place, never copied.
    set(found ${CMAKE_CURRENT_BINARY_DIR}/${name}.found)
    file(MAKE_DIRECTORY ${found})
    add_test(NAME ${name} COMMAND ${name} -runs=20000 -max_total_time=30 ${found} ${F_CORPUS})
  else()
    add_executable(${name} ${F_SOURCES} ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.c)
    add_test(NAME ${name} COMMAND ${name} ${F_CORPUS})
  endif()
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  # A replay proves something only under the sanitizers (tests/unit/hygiene).
  set_tests_properties(${name} PROPERTIES LABELS "fuzz" FIXTURES_REQUIRED sanitized)
endfunction()

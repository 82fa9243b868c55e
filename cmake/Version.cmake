# version.h for every target: PROJECT_VERSION, plus `git describe` when the
# source is a git checkout (a tarball or .deb build says only the version).
find_package(Git QUIET)
set(AGENTSAFE_VERSION_FULL "${PROJECT_VERSION}")
if(GIT_FOUND AND EXISTS "${PROJECT_SOURCE_DIR}/.git")
  execute_process(COMMAND ${GIT_EXECUTABLE} describe --always --dirty --tags
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    OUTPUT_VARIABLE AGENTSAFE_GIT_DESCRIBE OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_QUIET RESULT_VARIABLE AGENTSAFE_GIT_RC)
  if(AGENTSAFE_GIT_RC EQUAL 0 AND AGENTSAFE_GIT_DESCRIBE)
    set(AGENTSAFE_VERSION_FULL "${PROJECT_VERSION} (${AGENTSAFE_GIT_DESCRIBE})")
  endif()
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/version.h.in
  ${PROJECT_BINARY_DIR}/generated/version.h @ONLY)
include_directories(${PROJECT_BINARY_DIR}/generated)

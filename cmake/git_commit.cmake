# Writes OUT, the header that names the commit a build comes from (bench/report.c puts it in
# every report): #define VKG_GIT_COMMIT "<12 hex digits>", "+dirty" when tracked files differ
# from that commit, "" outside a git checkout, or PINNED when the configure set one
# (-DVKG_GIT_COMMIT=...). Run at every build by the vkg_git_commit target (CMakeLists.txt), so
# that a report names the commit its binary was built from, not the one CMake configured at;
# the file is rewritten only when the text changes, so nothing recompiles otherwise.
set(commit "${PINNED}")
if(NOT commit AND GIT AND EXISTS "${SRC}/.git")
  execute_process(COMMAND "${GIT}" rev-parse --short=12 HEAD WORKING_DIRECTORY "${SRC}"
    OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  execute_process(COMMAND "${GIT}" status --porcelain --untracked-files=no WORKING_DIRECTORY "${SRC}"
    OUTPUT_VARIABLE dirty OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(commit AND dirty)
    string(APPEND commit "+dirty")
  endif()
endif()
set(text "/* Generated at build time by cmake/git_commit.cmake: the commit this build comes from. */\n#define VKG_GIT_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()

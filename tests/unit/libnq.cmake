# libnq unit tests: the public client API against no broker and against a
# scripted in-process one, and nq_worker against a scripted work/results
# pair. Included from tests/unit/CMakeLists.txt when present.
foreach(t test_libnq_client test_libnq_worker)
  add_executable(${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c)
  target_link_libraries(${t} PRIVATE nq nq_common nq_cmocka Threads::Threads)
  add_test(NAME ${t} COMMAND ${t})
  set_tests_properties(${t} PROPERTIES TIMEOUT 60 LABELS unit)
endforeach()

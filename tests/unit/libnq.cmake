# libnq unit tests: the public client API against no broker and against a
# scripted in-process one, and nq_worker against a scripted work/results
# pair. Included from tests/unit/CMakeLists.txt when present.
foreach(t test_libnq_client test_libnq_worker)
  nq_test(${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c 60 unit nq nq_common
    Threads::Threads)
endforeach()

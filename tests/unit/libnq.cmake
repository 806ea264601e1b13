# libnq unit tests: the public client API against no broker and against a
# scripted in-process one, and nq_worker against a scripted work/results
# pair. Included from tests/unit/CMakeLists.txt when present.
foreach(t test_libnq_client test_libnq_worker)
  nq_test(${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c 60 unit nq nq_common
    Threads::Threads)
endforeach()
# The shard map is internal to libnq: its test builds the module itself.
nq_test(test_shards ${CMAKE_CURRENT_LIST_DIR}/test_shards.c 60 unit nq_common)
target_sources(test_shards PRIVATE ${PROJECT_SOURCE_DIR}/client/src/shards.c)
target_include_directories(test_shards PRIVATE
  ${PROJECT_SOURCE_DIR}/client/src ${PROJECT_SOURCE_DIR}/client/include)

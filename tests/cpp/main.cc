// The one translation unit that defines main() for wg_tests (see wg_test.h).
#define WG_TEST_MAIN
#include "wg_test.h"

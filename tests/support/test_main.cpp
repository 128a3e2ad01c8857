#define BOOST_TEST_MODULE bodydock
#include <boost/test/unit_test.hpp>

/* The test build must really be the AddressSanitizer + UBSan build: the fuzz
 * replays and the proxy suite claim sanitizer coverage and depend on this
 * test (ctest fixture "sanitized"), so a build without the sanitizers fails
 * here instead of passing them vacuously. */
#include <dlfcn.h>
#include <stdio.h>

#if defined(__SANITIZE_ADDRESS__)
#define ASAN_COMPILED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_COMPILED 1
#endif
#endif
#ifndef ASAN_COMPILED
#define ASAN_COMPILED 0
#endif

int main(void)
{
	int bad = 0;
	if (!ASAN_COMPILED) {
		fprintf(stderr, "not compiled with -fsanitize=address\n");
		bad++;
	}
	/* The runtimes are linked in and live: what the flags promise. */
	if (dlsym(RTLD_DEFAULT, "__asan_init") == NULL) {
		fprintf(stderr, "no AddressSanitizer runtime in the process\n");
		bad++;
	}
	if (dlsym(RTLD_DEFAULT, "__ubsan_handle_add_overflow") == NULL &&
	    dlsym(RTLD_DEFAULT, "__ubsan_handle_add_overflow_abort") == NULL) {
		fprintf(stderr, "no UBSan runtime in the process\n");
		bad++;
	}
	if (bad) {
		fprintf(stderr,
			"this build is not sanitized: the tests that claim "
			"ASan/UBSan coverage would prove nothing; configure "
			"with -DCMAKE_BUILD_TYPE=Debug (or "
			"-DAGENTSAFE_SANITIZE=ON)\n");
		return 1;
	}
	printf("ASan and UBSan compiled in and their runtimes loaded\n");
	return 0;
}

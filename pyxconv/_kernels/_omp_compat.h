/* OpenMP query functions that also compile without OpenMP (e.g. Apple clang):
   then the kernels run on one thread and these report that. */
#ifndef PYXCONV_OMP_COMPAT_H
#define PYXCONV_OMP_COMPAT_H
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif
#endif

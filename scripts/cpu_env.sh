# shellcheck shell=bash
# Source before CPU training or benchmarks:  source scripts/cpu_env.sh
#
# XLA:CPU allocates every step's temporaries afresh; with glibc's default malloc each step
# page-faults them in again (llmjp_jax/train/allocator.py). This keeps that memory cheap:
#   - jemalloc or tcmalloc, when the system has one (apt install libjemalloc2), is preloaded;
#     jemalloc is told to keep freed pages (no decay) and to use transparent huge pages;
#   - otherwise glibc backs large blocks with transparent huge pages (glibc >= 2.35; older
#     versions ignore the tunable).
# LLMJP_ALLOCATOR=glibc keeps the plain glibc path; it is also used when nothing else is found.

_llmjp_find_lib() {  # ldconfig lives in /sbin, which a user's PATH may not have
  { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | awk -v lib="$1" '$1 == lib { print $NF; exit }'
}

_llmjp_lib=""
case "${LLMJP_ALLOCATOR:-auto}" in
  auto) _llmjp_lib=$(_llmjp_find_lib libjemalloc.so.2)
        [ -n "$_llmjp_lib" ] || _llmjp_lib=$(_llmjp_find_lib libtcmalloc_minimal.so.4) ;;
  jemalloc) _llmjp_lib=$(_llmjp_find_lib libjemalloc.so.2) ;;
  tcmalloc) _llmjp_lib=$(_llmjp_find_lib libtcmalloc_minimal.so.4) ;;
  glibc) ;;
  *) echo "cpu_env.sh: LLMJP_ALLOCATOR must be auto, jemalloc, tcmalloc or glibc" >&2 ;;
esac

if [ -n "$_llmjp_lib" ]; then
  case ":${LD_PRELOAD:-}:" in
    *":$_llmjp_lib:"*) ;;  # sourced before
    *) export LD_PRELOAD="$_llmjp_lib${LD_PRELOAD:+:$LD_PRELOAD}" ;;
  esac
  case "$_llmjp_lib" in
    *jemalloc*) export MALLOC_CONF="${MALLOC_CONF:-dirty_decay_ms:-1,muzzy_decay_ms:-1,thp:always}" ;;
  esac
else
  case ":${GLIBC_TUNABLES:-}:" in
    *:glibc.malloc.hugetlb=*) ;;
    *) export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1" ;;
  esac
fi
unset _llmjp_lib
unset -f _llmjp_find_lib

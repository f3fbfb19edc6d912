#ifndef WGCNI_NLERR_H
#define WGCNI_NLERR_H

/* libnl's NLE_* code (either sign) as a negative errno; 0 stays 0. */
int nlerr_errno(int nle);

#endif

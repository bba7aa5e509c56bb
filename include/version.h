/* version.h - the release, as --version and the User-Agent show it. */
#ifndef SMARTRELAY_VERSION_H
#define SMARTRELAY_VERSION_H

#define SMARTRELAY_VERSION "0.1.0"

#endif
